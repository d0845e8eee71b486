"""The offline kind node image's configuration: what makes a single-node cluster work on these hosts."""

from __future__ import annotations

import ipaddress

import pytest
import yaml

from certsmith_devtools import kindnode
from certsmith_devtools.image import ImageBuildError


def test_the_cluster_config_disables_kindnet_and_allows_cgroup_v1() -> None:
    cluster = yaml.safe_load(kindnode.KIND_CONFIG)
    patch = yaml.safe_load(cluster["kubeadmConfigPatches"][0])
    assert cluster["networking"]["disableDefaultCNI"] is True
    assert patch == {"kind": "KubeletConfiguration", "failCgroupV1": False}


def test_the_node_pod_range_lies_in_the_cluster_pod_subnet() -> None:
    ranges = kindnode.CNI_CONFIG["plugins"][0]["ipam"]["ranges"]  # type: ignore[index]
    node_range = ipaddress.ip_network(ranges[0][0]["subnet"])
    cluster = ipaddress.ip_network(yaml.safe_load(kindnode.KIND_CONFIG)["networking"]["podSubnet"])
    assert node_range.subnet_of(cluster)  # type: ignore[arg-type]


def test_containerd_is_told_to_restrict_oom_scores() -> None:
    config = '[plugins."io.containerd.grpc.v1.cri"]\n  restrict_oom_score_adj = false\n'
    assert "restrict_oom_score_adj = true" in kindnode._restricted_oom_score_adj(config)


def test_a_changed_kind_config_is_noticed_rather_than_silently_kept() -> None:
    with pytest.raises(ImageBuildError, match="restrict_oom_score_adj"):
        kindnode._restricted_oom_score_adj("version = 3\n")
