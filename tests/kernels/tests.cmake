# Kernel tests: fast kernels vs naive references, finite differences, conventions, threads.
# Not PyTorch golden tests of whole layers; those live with the nn tests.
# One executable from several files: main (test_kernels.c) runs the themed checks in a fixed order,
# and every input comes from one seed counter (kernels_harness.c), so the parts stay together.
relate_add_test(test_kernels ${CMAKE_CURRENT_LIST_DIR}/test_kernels.c
  ${CMAKE_CURRENT_LIST_DIR}/kernels_harness.c
  ${CMAKE_CURRENT_LIST_DIR}/kernels_conv.c
  ${CMAKE_CURRENT_LIST_DIR}/kernels_batchnorm.c
  ${CMAKE_CURRENT_LIST_DIR}/kernels_batchnorm_blocked.c
  ${CMAKE_CURRENT_LIST_DIR}/kernels_pool.c
  ${CMAKE_CURRENT_LIST_DIR}/kernels_elementwise.c
  ${CMAKE_CURRENT_LIST_DIR}/kernels_dense.c
  ${CMAKE_CURRENT_LIST_DIR}/kernels_losses.c)
# The im2col + OpenBLAS convolution (fallback and RELATE_CONV=blas) must pass the same checks.
add_test(NAME test_kernels_conv_blas COMMAND test_kernels)
set_tests_properties(test_kernels_conv_blas PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=2;RELATE_CONV=blas")
# Synchronised batch norm (issue 12): replicas as threads against the one-process kernels.
relate_add_test(test_batchnorm_sync ${CMAKE_CURRENT_LIST_DIR}/test_batchnorm_sync.c)
find_package(Threads REQUIRED)
target_link_libraries(test_batchnorm_sync PRIVATE Threads::Threads)
# Gradients stored into fresh buffers (relate_grad_to_write) equal gradients added to zeros.
relate_add_test(test_grad_store ${CMAKE_CURRENT_LIST_DIR}/test_grad_store.c)
