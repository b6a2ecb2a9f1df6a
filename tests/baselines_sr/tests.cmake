# simclr and rotationnet (spec 3.2, 3.3): the contrastive loss op against a double-precision oracle
# and finite differences; both methods against PyTorch goldens, their initial losses, settings and
# checkpoints; and an end-to-end run of each on real Fashion-MNIST (label e2e): learning checks
# against randomweights in every build type, regression checks of recorded accuracies
# (RELATE_E2E_EXACT=1) in the optimised build only.
relate_add_test(test_contrastive_ops ${CMAKE_CURRENT_LIST_DIR}/test_contrastive_ops.c)
relate_add_test(test_simclr_rotationnet ${CMAKE_CURRENT_LIST_DIR}/test_simclr_rotationnet.c)
if(CMAKE_BUILD_TYPE STREQUAL "Release" AND NOT RELATE_SANITIZE)
  set(RELATE_E2E_EXACT_SR 1)
else()
  set(RELATE_E2E_EXACT_SR 0)
endif()
add_test(NAME e2e_simclr_rotationnet
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/e2e_simclr_rotationnet.sh $<TARGET_FILE:relate_cli>)
set_tests_properties(e2e_simclr_rotationnet PROPERTIES
  ENVIRONMENT "OMP_NUM_THREADS=2;RELATE_E2E_EXACT=${RELATE_E2E_EXACT_SR}" LABELS e2e)
