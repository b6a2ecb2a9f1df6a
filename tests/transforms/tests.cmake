# tests/transforms: the augmentation primitives against PIL/torchvision (tests/golden/transforms.safetensors,
# from tools/golden_transforms.py), the samplers' distributions and the pipelines T1-T6.
# Not the dataset readers' or the loader's tests.
relate_add_test(test_transforms ${CMAKE_CURRENT_LIST_DIR}/test_transforms.c)
# The pipelines' parameter distributions and output statistics through the loader, against
# torchvision's samplers (tests/golden/augment_stats.safetensors, tools/golden_augment_stats.py).
relate_add_test(test_augment_stats ${CMAKE_CURRENT_LIST_DIR}/test_augment_stats.c)
