// Replaced by the simulator tests when they land.
