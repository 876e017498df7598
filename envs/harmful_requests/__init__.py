"""HarmfulRequests-v0: harmful requests to decline and benign look-alikes to answer."""
