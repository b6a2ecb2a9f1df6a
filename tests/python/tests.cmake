# tests/python: python/relate_torch.py (relate's backbones as PyTorch modules, load_backbone)
# against `relate embed` on real Fashion-MNIST (Debian's dataset-fashion-mnist). Runs with
# /usr/bin/python3, the interpreter that has Debian's python3-torch; without it, torch or numpy the
# test FAILS: it never skips.
add_test(NAME test_relate_torch
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/test_relate_torch.py $<TARGET_FILE:relate_cli>)
set_tests_properties(test_relate_torch PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=2" LABELS python TIMEOUT 300)
