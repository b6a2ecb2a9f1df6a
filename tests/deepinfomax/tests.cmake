# Deep InfoMax (spec 3.4): kernels and graph ops, the method against PyTorch goldens, and the three
# stages end to end on real Fashion-MNIST (the learning check against randomweights in every build type;
# the regression checks of recorded accuracies only in the optimised build, as tests/e2e).
relate_add_test(test_infomax_ops ${CMAKE_CURRENT_LIST_DIR}/test_infomax_ops.c)
relate_add_test(test_deepinfomax ${CMAKE_CURRENT_LIST_DIR}/test_deepinfomax.c)
if(CMAKE_BUILD_TYPE STREQUAL "Release" AND NOT RELATE_SANITIZE)
  set(RELATE_DIM_E2E_EXACT 1)
else()
  set(RELATE_DIM_E2E_EXACT 0)
endif()
add_test(NAME e2e_deepinfomax COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/e2e_deepinfomax.sh $<TARGET_FILE:relate_cli>)
set_tests_properties(e2e_deepinfomax PROPERTIES
  ENVIRONMENT "OMP_NUM_THREADS=2;RELATE_E2E_EXACT=${RELATE_DIM_E2E_EXACT}" LABELS e2e)
