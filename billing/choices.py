from django.db import models


class QuotaResource(models.TextChoices):
    """Every quota-limited resource, with DreamCompute's default limit."""

    INSTANCES = "instances", "Instances"
    CORES = "cores", "vCPUs"
    RAM = "ram", "RAM (MiB)"
    KEY_PAIRS = "key_pairs", "Key pairs"
    SERVER_GROUPS = "server_groups", "Server groups"
    NETWORKS = "networks", "Networks"
    SUBNETS = "subnets", "Subnets"
    PORTS = "ports", "Ports"
    ROUTERS = "routers", "Routers"
    FLOATING_IPS = "floating_ips", "Floating IPs"
    SECURITY_GROUPS = "security_groups", "Security groups"
    SECURITY_GROUP_RULES = "security_group_rules", "Security group rules"
    VOLUMES = "volumes", "Volumes"
    GIGABYTES = "gigabytes", "Volume storage (GB)"
    SNAPSHOTS = "snapshots", "Volume snapshots"
    IMAGES = "images", "Images"


DEFAULT_LIMITS = {
    QuotaResource.INSTANCES: 32,
    QuotaResource.CORES: 32,
    QuotaResource.RAM: 64 * 1024,
    QuotaResource.KEY_PAIRS: 100,
    QuotaResource.SERVER_GROUPS: 10,
    QuotaResource.NETWORKS: 10,
    QuotaResource.SUBNETS: 10,
    QuotaResource.PORTS: 50,
    QuotaResource.ROUTERS: 10,
    QuotaResource.FLOATING_IPS: 5,
    QuotaResource.SECURITY_GROUPS: 10,
    QuotaResource.SECURITY_GROUP_RULES: 100,
    QuotaResource.VOLUMES: 64,
    QuotaResource.GIGABYTES: 100,
    QuotaResource.SNAPSHOTS: 64,
    QuotaResource.IMAGES: 20,
}
UNLIMITED = -1
