relate_add_test(test_backbones ${CMAKE_CURRENT_LIST_DIR}/test_backbones.c)
relate_add_test(test_backbone_golden ${CMAKE_CURRENT_LIST_DIR}/test_backbone_golden.c)
relate_add_test(test_graph_ops ${CMAKE_CURRENT_LIST_DIR}/test_graph_ops.c)
