relate_add_test(test_base ${CMAKE_CURRENT_LIST_DIR}/test_base.c)
relate_add_test(test_safetensors ${CMAKE_CURRENT_LIST_DIR}/test_safetensors.c)
relate_add_test(test_pyformat ${CMAKE_CURRENT_LIST_DIR}/test_pyformat.c)
