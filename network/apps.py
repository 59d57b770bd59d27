from django.apps import AppConfig


class NetworkConfig(AppConfig):
    name = "network"
    verbose_name = "Network"

    def ready(self):
        from billing import quotas

        from .models import FloatingIP, Network, Port, Router, SecurityGroup, SecurityGroupRule, Subnet

        def count(model):
            return lambda project, user: model.objects.for_project(project).count()

        quotas.register_counter("networks", count(Network))
        quotas.register_counter("subnets", count(Subnet))
        # Ports a project asked for; router legs and floating-IP holders are the
        # cloud's bookkeeping (Neutron does not charge the tenant for them either).
        quotas.register_counter(
            "ports",
            lambda project, user: (
                Port.objects.for_project(project).exclude(device_owner__in=Port.INTERNAL_OWNERS).count()
            ),
        )
        quotas.register_counter("routers", count(Router))
        quotas.register_counter("floating_ips", count(FloatingIP))
        quotas.register_counter("security_groups", count(SecurityGroup))
        quotas.register_counter(
            "security_group_rules",
            lambda project, user: SecurityGroupRule.objects.filter(group__project=project).count(),
        )
