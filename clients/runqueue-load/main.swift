print("runqueue-load: not built yet")
