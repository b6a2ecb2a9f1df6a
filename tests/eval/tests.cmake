# Evaluation of frozen features: the weighted kNN classifier against PyTorch (tools/golden_knn.py).
relate_add_test(test_knn ${CMAKE_CURRENT_LIST_DIR}/test_knn.c)
# t-SNE (relate/tsne.h): affinities against numpy (tools/golden_tsne.py), gradients against finite
# differences and each other, maps of separated clusters, thread independence.
relate_add_test(test_tsne ${CMAKE_CURRENT_LIST_DIR}/test_tsne.c)
# `relate embed --tsne` on real Fashion-MNIST: the PNG decoded by PIL, determinism, no overwrite.
add_test(NAME e2e_tsne COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/e2e_tsne.sh $<TARGET_FILE:relate_cli>)
set_tests_properties(e2e_tsne PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=2" LABELS e2e)
