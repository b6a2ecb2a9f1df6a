# tests/hostile: regression tests for the reader defects found by fuzzing (fuzz/), each built from
# its crafted input. They matter most in the ASan + UBSan build, where an over-read or undefined
# operation aborts the test.
relate_add_test(test_hostile_inputs ${CMAKE_CURRENT_LIST_DIR}/test_hostile_inputs.c)
target_link_libraries(test_hostile_inputs PRIVATE relate_data_fixtures)
target_include_directories(test_hostile_inputs PRIVATE ${PROJECT_SOURCE_DIR}/tests/data)
