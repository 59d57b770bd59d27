from django.contrib import admin

from .models import FixedIP, FloatingIP, Network, Port, Router, SecurityGroup, SecurityGroupRule, Subnet


@admin.register(Network)
class NetworkAdmin(admin.ModelAdmin):
    list_display = ("name", "id", "project", "shared", "router_external", "segmentation_id", "status")
    list_filter = ("shared", "router_external")
    search_fields = ("name", "id")


@admin.register(Subnet)
class SubnetAdmin(admin.ModelAdmin):
    list_display = ("name", "id", "network", "cidr", "gateway_ip", "project")
    search_fields = ("name", "id", "cidr")


class FixedIPInline(admin.TabularInline):
    model = FixedIP
    extra = 0


@admin.register(Port)
class PortAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "network", "mac_address", "device_owner", "device_id", "status")
    list_filter = ("device_owner",)
    search_fields = ("id", "name", "mac_address", "device_id")
    inlines = [FixedIPInline]


@admin.register(FixedIP)
class FixedIPAdmin(admin.ModelAdmin):
    list_display = ("ip_address", "subnet", "port")
    search_fields = ("ip_address",)


@admin.register(Router)
class RouterAdmin(admin.ModelAdmin):
    list_display = ("name", "id", "project", "gateway_network", "enable_snat", "status")
    search_fields = ("name", "id")


@admin.register(FloatingIP)
class FloatingIPAdmin(admin.ModelAdmin):
    list_display = ("floating_ip_address", "id", "project", "port", "fixed_ip_address", "status")
    search_fields = ("floating_ip_address", "id")


class SecurityGroupRuleInline(admin.TabularInline):
    model = SecurityGroupRule
    fk_name = "group"
    extra = 0


@admin.register(SecurityGroup)
class SecurityGroupAdmin(admin.ModelAdmin):
    list_display = ("name", "id", "project")
    search_fields = ("name", "id")
    inlines = [SecurityGroupRuleInline]


@admin.register(SecurityGroupRule)
class SecurityGroupRuleAdmin(admin.ModelAdmin):
    list_display = ("id", "group", "direction", "ethertype", "protocol", "port_range_min", "port_range_max")
