"""CodingAgent-v0: multi-turn programming tasks with tools, a gameable grader and hack records."""
