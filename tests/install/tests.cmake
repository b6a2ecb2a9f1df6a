# relate as a library: `cmake --install` into a temporary prefix, then examples/embed.c compiled
# with pkg-config against the installed headers and librelate.so (and librelate.a), run, and
# compared with `relate embed`. Not in the sanitizer build: a program built without
# -fsanitize cannot load an instrumented library, and the plain build runs this test in CI.
if(RELATE_SANITIZE OR RELATE_FUZZ)
  return()
endif()
add_test(NAME install_library COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/test_install.sh ${CMAKE_COMMAND}
  ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR} $<TARGET_FILE:relate_cli> ${CMAKE_C_COMPILER})
set_tests_properties(install_library PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=2" LABELS e2e)
