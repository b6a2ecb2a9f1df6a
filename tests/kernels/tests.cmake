# Kernel tests: fast kernels vs naive references, finite differences, conventions, threads.
# Not PyTorch golden tests of whole layers; those live with the nn tests.
relate_add_test(test_kernels ${CMAKE_CURRENT_LIST_DIR}/test_kernels.c)
