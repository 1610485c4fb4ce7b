// Training module: datasets, augmentation, optimizers, schedules, loops.
