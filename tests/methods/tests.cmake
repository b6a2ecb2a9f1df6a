relate_add_test(test_relationnet ${CMAKE_CURRENT_LIST_DIR}/test_relationnet.c)
