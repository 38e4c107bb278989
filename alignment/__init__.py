"""Permutation alignment (Git Re-Basin, REPAIR) for any model: its permutation groups found from the torch.fx
graph (groups), permuting a network (permute), weight and activation matching (matching), REPAIR (repair)."""
from alignment.groups import Axis, Group, Site, Symmetries, analyse, find_groups
from alignment.matching import (WeightMatching, activation_matching, activation_similarities, assignment,
                                parameters, weight_matching)
from alignment.permute import inverse, permute_model, permute_state, random_permutation
from alignment.repair import channel_statistics, goal_statistics, repair, repair_layers

__all__ = ["Axis", "Group", "Site", "Symmetries", "analyse", "find_groups", "WeightMatching", "activation_matching",
           "activation_similarities", "assignment", "parameters", "weight_matching", "inverse", "permute_model",
           "permute_state", "random_permutation", "channel_statistics", "goal_statistics", "repair", "repair_layers"]
