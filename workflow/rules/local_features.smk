# (rules for this stage land here)
