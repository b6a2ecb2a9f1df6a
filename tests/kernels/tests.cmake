# Kernel tests: fast kernels vs naive references, finite differences, conventions, threads.
# Not PyTorch golden tests of whole layers; those live with the nn tests.
relate_add_test(test_kernels ${CMAKE_CURRENT_LIST_DIR}/test_kernels.c)
# The im2col + OpenBLAS convolution (fallback and RELATE_CONV=blas) must pass the same checks.
add_test(NAME test_kernels_conv_blas COMMAND test_kernels)
set_tests_properties(test_kernels_conv_blas PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=2;RELATE_CONV=blas")
# Synchronised batch norm (issue 12): replicas as threads against the one-process kernels.
relate_add_test(test_batchnorm_sync ${CMAKE_CURRENT_LIST_DIR}/test_batchnorm_sync.c)
find_package(Threads REQUIRED)
target_link_libraries(test_batchnorm_sync PRIVATE Threads::Threads)
# Gradients stored into fresh buffers (relate_grad_to_write) equal gradients added to zeros.
relate_add_test(test_grad_store ${CMAKE_CURRENT_LIST_DIR}/test_grad_store.c)
