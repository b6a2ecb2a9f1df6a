# tests/dist: relate/dist.h's collectives under mpirun (Open MPI: openmpi-bin, libopenmpi-dev),
# and the relate command started as several processes. Without MPI in the build, mpi_required
# fails under RELATE_REQUIRE_ALL=1 (CI) and says what to install.
add_executable(test_dist ${CMAKE_CURRENT_LIST_DIR}/test_dist.c)
target_link_libraries(test_dist PRIVATE relate_test_util)
# Open MPI refuses root unless told; CI runs as root. One thread per rank: the ranks oversubscribe
# these 2 cores.
set(RELATE_MPI_TEST_ENV "OMP_NUM_THREADS=1;OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1")
if(RELATE_SANITIZE)
  # Open MPI's plugins leak at MPI_Finalize and are unloaded before LeakSanitizer reports, so
  # their frames cannot be suppressed by name. Leaks stay checked for relate's own code by
  # dist_single, which runs the same collectives in one process; everything else ASan and UBSan
  # check as usual here.
  string(APPEND RELATE_MPI_TEST_ENV ";ASAN_OPTIONS=detect_leaks=0:abort_on_error=1")
endif()
add_test(NAME dist_single COMMAND test_dist 1)
if(MPI_C_FOUND AND MPIEXEC_EXECUTABLE)
  foreach(np 1 2 3)
    add_test(NAME dist_mpirun_${np} COMMAND ${MPIEXEC_EXECUTABLE} --oversubscribe -np ${np} $<TARGET_FILE:test_dist> ${np})
    # RUN_SERIAL: the ranks poll for messages; beside the suite's two-thread tests on 2 cores they
    # would only wait for time slices.
    set_tests_properties(dist_mpirun_${np} PROPERTIES ENVIRONMENT "${RELATE_MPI_TEST_ENV}" LABELS mpi TIMEOUT 120
      RUN_SERIAL TRUE)
  endforeach()
  # A rank that dies: the job ends with the launcher's error (non-zero, within the timeout), not
  # a hang of the ranks waiting for it.
  add_test(NAME dist_rank_dies COMMAND bash -c "o=$(mktemp); timeout 60 \"$0\" --oversubscribe -np 3 \"$1\" 3 die > $o 2>&1; rc=$?; cat $o; ok=0; [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q 'dying on purpose' $o && grep -qi 'exit' $o && ok=1; rm -f $o; [ $ok = 1 ]"
    ${MPIEXEC_EXECUTABLE} $<TARGET_FILE:test_dist>)
  set_tests_properties(dist_rank_dies PROPERTIES ENVIRONMENT "${RELATE_MPI_TEST_ENV}" LABELS mpi TIMEOUT 120 RUN_SERIAL TRUE)
  add_test(NAME dist_cli COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/dist_cli.sh ${MPIEXEC_EXECUTABLE} $<TARGET_FILE:relate_cli>)
  set_tests_properties(dist_cli PROPERTIES ENVIRONMENT "${RELATE_MPI_TEST_ENV}" LABELS mpi TIMEOUT 120 RUN_SERIAL TRUE)
  # Stage 1's first step of every method on 2 and 3 processes against one (compare_runs.py: torch).
  add_test(NAME dist_train COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/dist_train.sh ${MPIEXEC_EXECUTABLE} $<TARGET_FILE:relate_cli>)
  set_tests_properties(dist_train PROPERTIES ENVIRONMENT "${RELATE_MPI_TEST_ENV}" LABELS mpi TIMEOUT 300 RUN_SERIAL TRUE)
  # Stage 2 (cached features, the frozen backbone per batch, finetuning) and the test stage on 2
  # and 3 processes against one.
  add_test(NAME dist_stage2 COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/dist_stage2.sh ${MPIEXEC_EXECUTABLE} $<TARGET_FILE:relate_cli>)
  set_tests_properties(dist_stage2 PROPERTIES ENVIRONMENT "${RELATE_MPI_TEST_ENV}" LABELS mpi TIMEOUT 120 RUN_SERIAL TRUE)
else()
  add_test(NAME mpi_required COMMAND bash -c "if [ \"$RELATE_REQUIRE_ALL\" = 1 ]; then echo 'FAIL: relate was built without MPI (apt-get install openmpi-bin libopenmpi-dev, then reconfigure)'; exit 1; fi; echo 'SKIP: no MPI in this build (apt-get install openmpi-bin libopenmpi-dev)'")
endif()
