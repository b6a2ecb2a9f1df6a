# Optimizer tests: torch.optim goldens (Adam, SGD, the reference's step decay) and the parameter
# store. Not tests of training loops; those live with the methods.
relate_add_test(test_optim ${CMAKE_CURRENT_LIST_DIR}/test_optim.c)
