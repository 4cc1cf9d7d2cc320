"""The engine: turns a run into training and measurement tasks, runs them in this process or a pool of
workers, caches their results and plans what a run will cost."""
