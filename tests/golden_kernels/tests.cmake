# tests/golden_kernels: every kernel of src/kernels/kernels.h against tests/golden/kernels.safetensors.
# Not the generator (tools/golden_kernels.py) and not the fast-vs-ref or finite-difference tests.
relate_add_test(test_golden_kernels ${CMAKE_CURRENT_LIST_DIR}/test_golden_kernels.c)
