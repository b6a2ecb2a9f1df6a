# End-to-end runs of the `relate` command on real Fashion-MNIST (Debian's dataset-fashion-mnist).
# Every build type runs the learning checks (each method beats randomweights, measured in the same
# script under the same linear evaluation, by a stated margin). The regression checks (accuracies
# equal to figures recorded from relate's own runs, RELATE_E2E_EXACT=1) run in the optimised build
# only: other optimisation levels may round differently (they still check everything else,
# including bit-exact resume).
if(CMAKE_BUILD_TYPE STREQUAL "Release" AND NOT RELATE_SANITIZE)
  set(RELATE_E2E_EXACT 1)
else()
  set(RELATE_E2E_EXACT 0)
endif()
add_test(NAME e2e_relationnet COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/e2e_relationnet.sh $<TARGET_FILE:relate_cli>)
add_test(NAME e2e_errors COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/e2e_errors.sh $<TARGET_FILE:relate_cli>)
add_test(NAME e2e_runs COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/e2e_runs.sh $<TARGET_FILE:relate_cli>)
add_test(NAME e2e_folders COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/e2e_folders.sh $<TARGET_FILE:relate_cli>)
set_tests_properties(e2e_relationnet e2e_errors e2e_runs e2e_folders PROPERTIES
  ENVIRONMENT "OMP_NUM_THREADS=2;RELATE_E2E_EXACT=${RELATE_E2E_EXACT}" LABELS e2e)
