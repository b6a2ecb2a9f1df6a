relate_add_test(test_loader ${CMAKE_CURRENT_LIST_DIR}/test_loader.c)
