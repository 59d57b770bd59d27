"""Nova 2.1 servers: list/detail/show/create/update/delete, actions,
metadata, instance actions, server groups, availability zones, and the
operators' hypervisors and services."""

import re

from django.db import DataError
from django.utils.dateparse import parse_datetime
from rest_framework.response import Response

from core.openstack.catalog import public_url
from core.openstack.errors import BadRequest, Conflict, NotFound
from core.openstack.pagination import links, paginate
from core.openstack.views import parse_bool, parse_int
from network import services as network_services
from storage.services import volumes_attached

from .. import services
from ..models import Flavor, Host, Instance, InstanceAction, InstanceFault, ServerGroup
from ..states import STATUS_FILTER, VMState
from .serializers import iso, server_brief, server_detail
from .views import NovaView, only_keys

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")


def attach_faults(instances):
    errors = [i.pk for i in instances if i.vm_state == VMState.ERROR]
    latest = {}
    if errors:
        for fault in InstanceFault.objects.filter(instance_id__in=errors).order_by("instance_id", "-created_at",
                                                                                  "-id"):
            latest.setdefault(fault.instance_id, fault)
    for instance in instances:
        instance.latest_fault = latest.get(instance.pk)
    return instances


def ref_id(value, what):
    """An id, or a URL ending in one (Nova accepts both for imageRef/flavorRef)."""
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{what} must be a non-empty string.")
    return value.rstrip("/").rsplit("/", 1)[-1]


class ServerViewMixin(NovaView):
    def servers(self):
        query = Instance.objects.select_related("host")
        if self.request.user.is_staff and parse_bool(self.request.query_params.get("all_tenants", "false"),
                                                     "all_tenants"):
            return query
        return query.for_project(self.request.project)

    def server(self, server_id):
        instance = self.get_or_404(self.servers().live(), f"Instance {server_id} could not be found.", pk=server_id)
        return attach_faults([instance])[0]

    def render(self, instance, addresses=None, volumes=None):
        if addresses is None:
            addresses = network_services.addresses_for([instance]).get(instance.pk, {})
        if volumes is None:
            volumes = volumes_attached([instance.pk]).get(instance.pk, [])
        return server_detail(self.request, instance, admin=self.request.user.is_staff, addresses=addresses,
                             volumes=volumes)


class ServerListView(ServerViewMixin):
    detail = False

    def get(self, request):
        params = request.query_params
        servers = self.servers()
        deleted = parse_bool(params.get("deleted", "false"), "deleted")
        if not deleted:
            servers = servers.live()
        if "changes-since" in params:
            since = parse_datetime(params["changes-since"].replace(" ", "+"))
            if since is None:
                raise BadRequest(f"Invalid changes-since value {params['changes-since']!r}.")
            servers = Instance.objects.filter(pk__in=servers.values("pk")).filter(updated_at__gte=since)
        if "name" in params:
            try:
                re.compile(params["name"])
            except re.error:
                raise BadRequest(f"Invalid name filter {params['name']!r}: not a regular expression.") from None
            servers = servers.filter(name__regex=params["name"])
        if "status" in params:
            status = params["status"].upper()
            if status not in STATUS_FILTER:
                servers = servers.none()
            else:
                servers = servers.filter(vm_state__in=STATUS_FILTER[status])
        if "flavor" in params:
            servers = servers.filter(flavor_ref=params["flavor"])
        if "image" in params:
            servers = servers.filter(image_ref=ref_id(params["image"], "image"))
        for key in ("ip", "ip6"):
            if key in params:
                try:
                    re.compile(params[key])
                except re.error:
                    raise BadRequest(f"Invalid {key} filter {params[key]!r}.") from None
                servers = servers.filter(pk__in=network_services.instances_with_address(params[key]))
        try:
            rows, next_url = paginate(request, servers.select_related("host"), sort_key="created_at",
                                      descending=True)
        except DataError:
            raise BadRequest("Invalid filter.") from None
        if self.detail:
            attach_faults(rows)
            addresses = network_services.addresses_for(rows)
            volumes = volumes_attached([i.pk for i in rows])
            body = [self.render(i, addresses.get(i.pk, {}), volumes.get(i.pk, [])) for i in rows]
        else:
            body = [server_brief(request, i) for i in rows]
        return Response({"servers": body, **links("servers", next_url)})

    def post(self, request):
        data = self.body("server", also=("os:scheduler_hints", "OS-SCH-HNT:scheduler_hints"))
        only_keys(data, ("name", "imageRef", "flavorRef", "key_name", "user_data", "metadata", "min_count",
                         "max_count", "availability_zone", "networks", "security_groups",
                         "block_device_mapping_v2", "config_drive", "return_reservation_id", "adminPass",
                         "OS-DCF:diskConfig", "accessIPv4", "accessIPv6", "personality", "description"),
                  "server")
        hints = request.data.get("os:scheduler_hints") or request.data.get("OS-SCH-HNT:scheduler_hints") or {}
        if not isinstance(hints, dict):
            raise BadRequest("os:scheduler_hints must be an object.")
        if "name" not in data:
            raise BadRequest("'name' is a required property.")
        flavor = self.lookup_flavor(data.get("flavorRef"))
        block_devices = self.lookup_block_devices(data)
        image = None if any(bd.is_root for bd in block_devices) else self.lookup_image(data)
        for key in ("min_count", "max_count"):
            if key in data:
                data[key] = parse_int(data[key], key, minimum=1)
        nics = network_services.resolve_nic_requests(request.project, data.get("networks"))
        security_groups = network_services.resolve_security_groups(request.project, data.get("security_groups"))
        group = None
        if hints.get("group"):
            group = ServerGroup.objects.for_project(request.project).filter(pk=hints["group"]).first()
            if group is None:
                raise BadRequest(f"Invalid server group {hints['group']}.")
        zone = data.get("availability_zone")
        if zone is not None and (not isinstance(zone, str) or (zone and not Host.objects.filter(
                availability_zone=zone.split(":")[0]).exists())):
            raise BadRequest(f"The requested availability zone is not available: {zone!r}.")
        config_drive = data.get("config_drive", True)
        instances = services.launch(
            project=request.project, user=request.user, name=data["name"], flavor=flavor, image=image,
            key_name=data.get("key_name"), user_data=data.get("user_data"), metadata=data.get("metadata"),
            availability_zone=zone.split(":")[0] if zone else None, server_group=group,
            min_count=data.get("min_count", 1), max_count=data.get("max_count", data.get("min_count", 1)),
            config_drive=parse_bool(config_drive, "config_drive") if config_drive != "" else True,
            request_id=request.request_id, networks=nics, security_groups=security_groups,
            block_devices=block_devices,
        )
        if parse_bool(data.get("return_reservation_id", False), "return_reservation_id"):
            return Response({"reservation_id": instances[0].reservation_id}, status=202)
        first = instances[0]
        body = {"id": first.pk, "links": server_brief(request, first)["links"], "OS-DCF:diskConfig": "MANUAL",
                "security_groups": data.get("security_groups") or [{"name": "default"}]}
        response = Response({"server": body}, status=202)
        response["Location"] = body["links"][0]["href"]
        return response

    def lookup_flavor(self, ref):
        flavor_id = ref_id(ref, "flavorRef")
        flavor = Flavor.objects.visible_to(self.request.project, staff=self.request.user.is_staff).filter(
            pk=flavor_id).first()
        if flavor is None:
            raise BadRequest(f"Flavor {flavor_id} could not be found.")
        return flavor

    def lookup_image(self, data):
        from ..models import Image

        ref = data.get("imageRef")
        bdms = data.get("block_device_mapping_v2") or []
        if not isinstance(bdms, list):
            raise BadRequest("block_device_mapping_v2 must be a list.")
        for bdm in bdms:
            if not isinstance(bdm, dict):
                raise BadRequest("Each block device mapping must be an object.")
            source, dest = bdm.get("source_type"), bdm.get("destination_type", "local")
            if source == "image" and dest == "local" and bdm.get("boot_index") in (0, "0"):
                ref = ref or bdm.get("uuid")
            elif (source in ("blank", "image") and dest == "local") or dest == "volume":
                continue  # volumes: lookup_block_devices
            else:
                raise BadRequest(f"Block Device Mapping is Invalid: {source} → {dest} is not supported.")
        if not ref:
            raise BadRequest("An imageRef (or an image block device mapping) is required.")
        image_id = ref_id(ref, "imageRef")
        image = Image.objects.visible_to(self.request.project, staff=self.request.user.is_staff).filter(
            pk=image_id).first() if UUID_RE.match(image_id) else None
        if image is None:
            raise BadRequest(f"Image {image_id} could not be found.")
        return image


    def lookup_block_devices(self, data):
        """The ``block_device_mapping_v2`` entries with destination
        ``volume`` as services.BlockDevice, their sources found in the
        project (400 as Nova's InvalidBDM when one is not)."""
        from storage.models import Volume, VolumeSnapshot

        from ..models import Image

        bdms = data.get("block_device_mapping_v2") or []
        if not isinstance(bdms, list):
            raise BadRequest("block_device_mapping_v2 must be a list.")
        found = []
        for bdm in bdms:
            if not isinstance(bdm, dict):
                raise BadRequest("Each block device mapping must be an object.")
            only_keys(bdm, BDM_KEYS, "a block device mapping")
            if bdm.get("destination_type") != "volume" or parse_bool(bdm.get("no_device") or False, "no_device"):
                continue
            source = bdm.get("source_type")
            boot_index = bdm.get("boot_index")
            boot_index = None if boot_index in (None, "", "none", "None") else parse_int(boot_index, "boot_index",
                                                                                      minimum=-1)
            size = bdm.get("volume_size")
            size = None if size in (None, "") else parse_int(size, "volume_size", minimum=1)
            device = bdm.get("device_name") or None
            if device is not None:
                if not isinstance(device, str):
                    raise BadRequest("Block Device Mapping is Invalid: device_name must be a string.")
                device = device if device.startswith("/dev/") else f"/dev/{device}"
            volume_type = bdm.get("volume_type") or None
            ref = bdm.get("uuid") or bdm.get({"volume": "volume_id", "snapshot": "snapshot_id",
                                              "image": "image_id"}.get(source, "uuid"))
            fields = {}
            if source == "volume":
                fields["volume"] = Volume.objects.for_project(self.request.project).filter(pk=ref).first()
                if fields["volume"] is None:
                    raise BadRequest(f"Block Device Mapping is Invalid: failed to get volume {ref}.")
            elif source == "snapshot":
                fields["snapshot"] = VolumeSnapshot.objects.for_project(self.request.project).filter(pk=ref).first()
                if fields["snapshot"] is None:
                    raise BadRequest(f"Block Device Mapping is Invalid: failed to get snapshot {ref}.")
            elif source == "image":
                image_id = str(ref or "")
                fields["image"] = Image.objects.visible_to(self.request.project, staff=self.request.user.is_staff
                                                           ).filter(pk=image_id).first() if UUID_RE.match(
                    image_id) else None
                if fields["image"] is None:
                    raise BadRequest(f"Block Device Mapping is Invalid: failed to get image {ref}.")
            elif source != "blank":
                raise BadRequest(f"Block Device Mapping is Invalid: source_type {source!r} → volume is not "
                                 "supported.")
            found.append(services.BlockDevice(
                source=source, boot_index=boot_index if boot_index != -1 else None, size=size, device=device,
                delete_on_termination=parse_bool(bdm.get("delete_on_termination") or False,
                                                 "delete_on_termination"),
                volume_type=volume_type, **fields))
        return found


BDM_KEYS = ("source_type", "destination_type", "uuid", "boot_index", "volume_size", "delete_on_termination",
            "device_name", "disk_bus", "device_type", "guest_format", "volume_type", "tag", "no_device",
            "volume_id", "snapshot_id", "image_id")


class ServerDetailListView(ServerListView):
    detail = True


class ServerView(ServerViewMixin):
    def get(self, request, server_id):
        return Response({"server": self.render(self.server(server_id))})

    def put(self, request, server_id):
        instance = self.server(server_id)
        data = self.body("server")
        only_keys(data, ("name", "accessIPv4", "accessIPv6", "OS-DCF:diskConfig", "description"), "server")
        if "name" in data:
            instance = services.rename(instance, data["name"])
        return Response({"server": self.render(attach_faults([instance])[0])})

    def delete(self, request, server_id):
        services.delete_instance(self.server(server_id), user=request.user, request_id=request.request_id)
        return Response(status=204)


SIMPLE_ACTIONS = {"os-start": "start", "os-stop": "stop", "pause": "pause", "unpause": "unpause",
                  "suspend": "suspend", "resume": "resume", "confirmResize": "confirm_resize",
                  "revertResize": "revert_resize"}


class ServerActionView(ServerViewMixin):
    def post(self, request, server_id):
        if len(request.data) != 1:
            raise BadRequest("Exactly one action is expected in the request body.")
        (name, arg), = request.data.items()
        instance = self.server(server_id)
        user, rid = request.user, request.request_id
        if name in SIMPLE_ACTIONS:
            services.begin_action(instance, SIMPLE_ACTIONS[name], user=user, request_id=rid)
            return Response(status=202)
        if name == "reboot":
            kind = (arg or {}).get("type", "SOFT") if isinstance(arg, dict) else None
            if kind not in ("SOFT", "HARD", "soft", "hard"):
                raise BadRequest("reboot type must be SOFT or HARD.")
            services.begin_action(instance, "reboot_hard" if kind.upper() == "HARD" else "reboot", user=user,
                                  request_id=rid)
            return Response(status=202)
        if name == "resize":
            if not isinstance(arg, dict) or "flavorRef" not in arg:
                raise BadRequest("resize needs a flavorRef.")
            flavor = ServerListView.lookup_flavor(self, arg["flavorRef"])
            services.resize(instance, flavor, user=user, request_id=rid)
            return Response(status=202)
        if name == "rebuild":
            if not isinstance(arg, dict) or "imageRef" not in arg:
                raise BadRequest("rebuild needs an imageRef.")
            image = ServerListView.lookup_image(self, {"imageRef": arg["imageRef"]})
            services.rebuild(instance, image, user=user, name=arg.get("name"), request_id=rid)
            instance.refresh_from_db()
            return Response({"server": self.render(attach_faults([instance])[0])}, status=202)
        if name == "createImage":
            if not isinstance(arg, dict) or not isinstance(arg.get("name"), str):
                raise BadRequest("createImage needs a name.")
            image = services.snapshot(instance, name=arg["name"], user=user, request_id=rid,
                                      metadata=arg.get("metadata"))
            response = Response(status=202)
            response["Location"] = f"{public_url(request)}/image/v2/images/{image.pk}"
            return response
        if name == "lock":
            services.set_lock(instance, True, user=user,
                              reason=(arg or {}).get("locked_reason", "") if isinstance(arg, dict) else "")
            return Response(status=202)
        if name == "unlock":
            services.set_lock(instance, False, user=user)
            return Response(status=202)
        if name == "os-getConsoleOutput":
            return Response({"output": self.console_output(instance, arg)})
        if name == "os-getVNCConsole":
            return Response({"console": self.vnc_console(instance, arg)})
        if name in ("os-getSPICEConsole", "os-getSerialConsole", "os-getRDPConsole"):
            raise BadRequest(f"Unsupported console type: only noVNC consoles (os-getVNCConsole) are offered, "
                             f"not {name}.")
        raise BadRequest(f"Unknown or unsupported action {name!r}.")

    def vnc_console(self, instance, arg):
        """Nova's os-getVNCConsole: a single-use noVNC URL (compute/vnc.py)."""
        from .. import vnc

        kind = arg.get("type") if isinstance(arg, dict) else None
        if kind != "novnc":
            raise BadRequest(f"Unsupported console type {kind!r}: only 'novnc' is offered.")
        _, url = vnc.issue_token(instance, self.request.user, self.request)
        return {"type": "novnc", "url": url}

    @staticmethod
    def console_output(instance, arg):
        from ..console import console_output

        length = None
        if isinstance(arg, dict) and arg.get("length") not in (None, ""):
            length = parse_int(arg["length"], "length", minimum=-1)
            length = None if length == -1 else length
        if instance.vm_state == VMState.BUILDING:
            raise Conflict("The console is not available while the instance is building.")
        return console_output(instance, length)


class ServerMetadataView(ServerViewMixin):
    def get(self, request, server_id, key=None):
        instance = self.server(server_id)
        if key is None:
            return Response({"metadata": instance.metadata})
        if key not in instance.metadata:
            raise NotFound(f"Metadata item was not found: {key}.")
        return Response({"meta": {key: instance.metadata[key]}})

    def post(self, request, server_id):
        metadata = services.set_metadata(self.server(server_id), self.body("metadata"))
        return Response({"metadata": metadata})

    def put(self, request, server_id, key=None):
        instance = self.server(server_id)
        if key is None:
            return Response({"metadata": services.set_metadata(instance, self.body("metadata"), replace=True)})
        meta = self.body("meta")
        if list(meta) != [key]:
            raise BadRequest("The request body must hold exactly the key in the URL.")
        services.set_metadata(instance, meta)
        return Response({"meta": meta})

    def delete(self, request, server_id, key):
        services.delete_metadata_item(self.server(server_id), key)
        return Response(status=204)


def action_body(action, detail=False):
    body = {"action": action.action, "instance_uuid": action.instance_id, "request_id": action.request_id,
            "user_id": action.user_id, "project_id": action.project_id, "start_time": iso(action.start_time),
            "message": action.message or None}
    if detail:
        body["events"] = [{"event": f"compute_{action.action}", "start_time": iso(action.start_time),
                           "finish_time": iso(action.finish_time), "result": action.result or None,
                           "traceback": None}]
    return body


class InstanceActionsView(ServerViewMixin):
    def get(self, request, server_id, request_id=None):
        instance = self.get_or_404(self.servers(), f"Instance {server_id} could not be found.", pk=server_id)
        actions = InstanceAction.objects.filter(instance=instance)
        if request_id is not None:
            action = self.get_or_404(actions, f"Action {request_id} not found.", request_id=request_id)
            return Response({"instanceAction": action_body(action, detail=True)})
        return Response({"instanceActions": [action_body(a) for a in actions]})


def group_body(group):
    members = [i for i in group.members.all() if i.vm_state != VMState.DELETED]
    return {"id": group.pk, "name": group.name, "policies": [group.policy], "members": [m.pk for m in members],
            "metadata": {}, "project_id": group.project_id, "user_id": group.user_id}


class ServerGroupsView(NovaView):
    def get(self, request, group_id=None):
        groups = ServerGroup.objects.for_project(request.project).prefetch_related("members")
        if group_id is not None:
            return Response({"server_group": group_body(self.get_or_404(
                groups, f"Server group {group_id} could not be found.", pk=group_id))})
        return Response({"server_groups": [group_body(g) for g in groups]})

    def post(self, request, group_id=None):
        data = self.body("server_group")
        only_keys(data, ("name", "policies", "policy", "rules"), "server_group")
        policies = data.get("policies") or ([data["policy"]] if data.get("policy") else None)
        if not isinstance(policies, list) or len(policies) != 1:
            raise BadRequest("Exactly one policy is required.")
        group = services.create_server_group(project=request.project, user=request.user, name=data.get("name"),
                                             policy=policies[0])
        return Response({"server_group": group_body(group)})

    def delete(self, request, group_id):
        group = self.get_or_404(ServerGroup.objects.for_project(request.project),
                                f"Server group {group_id} could not be found.", pk=group_id)
        services.delete_server_group(group)
        return Response(status=204)


class AvailabilityZonesView(NovaView):
    def get(self, request, detail=False):
        zones = {}
        for host in Host.objects.all():
            zones.setdefault(host.availability_zone, []).append(host)
        body = []
        for name, hosts in sorted(zones.items()):
            entry = {"zoneName": name, "zoneState": {"available": any(h.is_up and h.enabled for h in hosts)},
                     "hosts": None}
            if detail and request.user.is_staff:
                entry["hosts"] = {h.name: {"nova-compute": {"available": h.is_up, "active": h.enabled,
                                                            "updated_at": iso(h.last_heartbeat)}} for h in hosts}
            body.append(entry)
        return Response({"availabilityZoneInfo": body})


def hypervisor_body(host, states=None, detail=False):
    body = {"id": host.pk, "hypervisor_hostname": host.name, "state": "up" if host.is_up else "down",
            "status": "enabled" if host.enabled else "disabled"}
    if detail:
        state = (states or {}).get(host.pk)
        body.update({
            "vcpus": host.vcpus, "memory_mb": host.memory_mib, "local_gb": host.disk_gb,
            "vcpus_used": state.used_vcpus if state else 0, "memory_mb_used": state.used_ram if state else 0,
            "local_gb_used": state.used_disk if state else 0, "running_vms": state.instances if state else 0,
            "hypervisor_type": host.hypervisor_type, "hypervisor_version": host.hypervisor_version,
            "host_ip": "127.0.0.1", "free_ram_mb": host.memory_mib - (state.used_ram if state else 0),
            "free_disk_gb": host.disk_gb - (state.used_disk if state else 0), "current_workload": 0,
            "disk_available_least": host.disk_gb, "cpu_info": "{}",
            "service": {"host": host.name, "id": host.pk, "disabled_reason": host.disabled_reason or None},
        })
    return body


class HypervisorsView(NovaView):
    admin_only = True

    def get(self, request, hypervisor_id=None, detail=False):
        from ..scheduler import host_states

        hosts = list(Host.objects.all())
        states = {s.host.pk: s for s in host_states(hosts)}
        if hypervisor_id is not None:
            host = next((h for h in hosts if str(h.pk) == hypervisor_id), None)
            if host is None:
                raise NotFound(f"Hypervisor with ID {hypervisor_id} could not be found.")
            return Response({"hypervisor": hypervisor_body(host, states, detail=True)})
        return Response({"hypervisors": [hypervisor_body(h, states, detail) for h in hosts]})


class ServicesView(NovaView):
    admin_only = True

    def get(self, request):
        return Response({"services": [
            {"id": h.pk, "binary": "nova-compute", "host": h.name, "zone": h.availability_zone,
             "status": "enabled" if h.enabled else "disabled", "state": "up" if h.is_up else "down",
             "updated_at": iso(h.last_heartbeat), "disabled_reason": h.disabled_reason or None,
             "forced_down": False}
            for h in Host.objects.all()]})

    def put(self, request, action=None):
        data = request.data
        host = Host.objects.filter(name=data.get("host")).first()
        if host is None:
            raise NotFound(f"Host {data.get('host')!r} could not be found.")
        if action not in ("enable", "disable", "disable-log-reason"):
            raise BadRequest("Unknown service action.")
        from .. import hosts

        hosts.set_enabled(host, action == "enable", data.get("disabled_reason", ""))
        return Response({"service": {"host": host.name, "binary": "nova-compute",
                                     "status": "enabled" if action == "enable" else "disabled"}})

