"""Permutation alignment (Git Re-Basin, REPAIR) for any model: its permutation groups found from the torch.fx
graph (groups), permuting a network (permute), weight and activation matching (matching), REPAIR (repair)."""
from alignment.groups import Axis, Group, Site, Symmetries, analyse, find_groups  # noqa: F401
from alignment.matching import (WeightMatching, activation_matching, activation_similarities,  # noqa: F401
                                assignment, parameters, weight_matching)
from alignment.permute import inverse, permute_model, permute_state, random_permutation  # noqa: F401
from alignment.repair import channel_statistics, goal_statistics, repair, repair_layers  # noqa: F401
