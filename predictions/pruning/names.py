"""The pruning criteria's names, torch-free: the protocol (:mod:`predictions.pruning.criteria`) computes
them and the report (:mod:`predictions.pruning.figures`) draws them."""

CRITERIA = ("magnitude", "variance", "random", "importance", "redundancy")
PRIMARY_CRITERIA = ("variance", "random", "importance", "redundancy")  # apply to every method
