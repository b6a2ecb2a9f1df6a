# Multi-step training against the reference's own PyTorch step (tools/golden_trajectory.py): every stage-1
# method and stage 2 (linear evaluation, finetuning) follow 20-24 steps from the same initial state; loss,
# meters, learning rates and a checksum of every checkpoint tensor are compared after each step.
relate_add_test(test_trajectory ${CMAKE_CURRENT_LIST_DIR}/test_trajectory.c)
