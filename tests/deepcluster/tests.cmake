relate_add_test(test_deepcluster ${CMAKE_CURRENT_LIST_DIR}/test_deepcluster.c)

# End to end on real Fashion-MNIST (Debian's dataset-fashion-mnist): pretraining, resume, linear
# evaluation and test; the learning check against randomweights in every build type, the regression
# checks of recorded accuracies in the optimised build only. Not registered
# under the sanitizers: every epoch extracts and clusters all 60,000 images, which ASan's allocator
# makes about 20x slower. OMP_WAIT_POLICY=passive changes no result; it keeps the OpenMP team from
# spinning against the loader threads and other processes on a busy 2-core machine (measured: one
# epoch 67 s with the default policy vs 12 s passive at load average 5.5).
if(NOT RELATE_SANITIZE)
  if(CMAKE_BUILD_TYPE STREQUAL "Release")
    set(RELATE_DC_E2E_EXACT 1)
  else()
    set(RELATE_DC_E2E_EXACT 0)
  endif()
  add_test(NAME e2e_deepcluster COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/e2e_deepcluster.sh $<TARGET_FILE:relate_cli>)
  set_tests_properties(e2e_deepcluster PROPERTIES
    ENVIRONMENT "OMP_NUM_THREADS=2;OMP_WAIT_POLICY=passive;RELATE_E2E_EXACT=${RELATE_DC_E2E_EXACT}" LABELS e2e)
endif()
