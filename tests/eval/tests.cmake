# Evaluation of frozen features: the weighted kNN classifier against PyTorch (tools/golden_knn.py).
relate_add_test(test_knn ${CMAKE_CURRENT_LIST_DIR}/test_knn.c)
