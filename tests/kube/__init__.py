"""Kubernetes workloads run on this machine: images, a stand-in kubelet, the pod network."""
