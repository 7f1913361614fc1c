"""NYC TLC taxi domain shared by training and serving: zone table and ride features."""
