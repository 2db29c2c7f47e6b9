print("runqueued")
