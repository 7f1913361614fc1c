"""Product-catalogue domain shared by classifier training and serving: the feature code."""
