"""Compute's dashboard forms. They check shapes; the rules (quotas, image
status, names) live in compute/services.py and compute/images.py, whose
refusals the views attach to the form as errors."""

import base64

from django import forms

from dashboard.forms import Form
from network import forms as network_forms
from network import services as network_services
from network.models import Network, SecurityGroup
from storage.forms import min_size as min_volume_size
from storage.models import Volume
from storage.states import VolumeStatus

from . import services
from .models import Flavor, Host, Image, KeyPair
from .models.images import ContainerFormat, DiskFormat, ImageStatus, Visibility

# A generous page of instances per launch; the quota is the real limit.
MAX_LAUNCH_COUNT = 32
MAX_USER_DATA_BYTES = 49152  # base64 makes it 65536, Nova's limit on the encoded form


class FlavorSelect(forms.Select):
    """Each option carries the flavor's sizes, so launch.js can draw the
    quota bars "after" without asking the server."""

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        flavor = getattr(value, "instance", None)
        if flavor is not None:
            option["attrs"].update({"data-vcpus": flavor.vcpus, "data-ram": flavor.ram, "data-disk": flavor.disk})
        return option


class FlavorChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, flavor):
        disk = f"{flavor.disk} GB disk" if flavor.disk else "no root disk"
        return f"{flavor.name} ({flavor.vcpus} vCPU, {flavor.ram} MiB RAM, {disk})"


class ImageChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, image):
        return image.name or image.pk


class VolumeChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, volume):
        return f"{volume.name or volume.pk} ({volume.size} GiB{'' if volume.bootable else ', not bootable'})"


# Where the root disk comes from (Horizon's "Select Boot Source"); the volume
# ones are block_device_mapping_v2 entries with destination ``volume``.
BOOT_SOURCES = [("image", "Image"), ("volume_from_image", "Image, on a new volume"), ("volume", "Existing volume")]


class LaunchForm(Form):
    name = forms.CharField(max_length=255, help_text="With a count above 1 the instances are named name-1, name-2, …")
    count = forms.IntegerField(min_value=1, max_value=MAX_LAUNCH_COUNT, initial=1,
                               help_text="As many as the quota allows are launched, up to this count.")
    boot_source = forms.ChoiceField(label="Boot source", choices=BOOT_SOURCES, initial="image", required=False,
                                    help_text="An image disk goes with the instance; a volume outlives it.")
    image = ImageChoiceField(queryset=Image.objects.none(), empty_label=None, required=False)
    volume_size = forms.IntegerField(label="Volume size (GiB)", min_value=1, max_value=2**31 - 1, required=False,
                                     help_text="New volume only. Empty: the image's size.")
    delete_on_termination = forms.BooleanField(label="Delete the volume with the instance", required=False,
                                               help_text="New volume only.")
    boot_volume = VolumeChoiceField(label="Volume", queryset=Volume.objects.none(), required=False,
                                    help_text="Existing volume only: an available, bootable volume of the project.")
    flavor = FlavorChoiceField(queryset=Flavor.objects.none(), empty_label=None, widget=FlavorSelect)
    key_name = forms.ChoiceField(label="Key pair", required=False)
    availability_zone = forms.ChoiceField(label="Availability zone", required=False)
    networks = network_forms.NetworkMultipleChoiceField(
        queryset=Network.objects.none(), required=False, widget=forms.SelectMultiple(attrs={"size": 4}),
        help_text="One interface per network. None: the instance has no network.")
    security_groups = network_forms.GroupMultipleChoiceField(
        label="Security groups", queryset=SecurityGroup.objects.none(), required=False,
        widget=forms.SelectMultiple(attrs={"size": 3}),
        help_text="Applied to each of its interfaces. None: nothing reaches the instance.")
    user_data = forms.CharField(
        label="User data", required=False, strip=False,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "class": "font-monospace"}),
        help_text="A cloud-init script or #cloud-config; sent to the instance as given.")

    def __init__(self, *args, project, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        self.fields["image"].queryset = (Image.objects.visible_to(project).filter(status=ImageStatus.ACTIVE)
                                         .order_by("name", "id"))
        self.fields["flavor"].queryset = Flavor.objects.visible_to(project).filter(disabled=False)
        self.fields["boot_volume"].queryset = (Volume.objects.for_project(project)
                                               .filter(status=VolumeStatus.AVAILABLE).order_by("-bootable", "name"))
        self.fields["count"].widget.attrs["data-launch-count"] = ""
        self.fields["flavor"].widget.attrs["data-launch-flavor"] = ""
        keys = list(KeyPair.objects.filter(user=user).values_list("name", flat=True))
        self.fields["key_name"].choices = [("", "No key pair"), *((k, k) for k in keys)]
        if len(keys) == 1:
            self.fields["key_name"].initial = keys[0]
        zones = Host.objects.order_by("availability_zone").values_list("availability_zone", flat=True).distinct()
        self.fields["availability_zone"].choices = [("", "Any zone"), *((z, z) for z in zones)]
        networks = network_forms.launch_networks(project)
        self.fields["networks"].queryset = networks
        public = networks.filter(name="public", shared=True).values_list("pk", flat=True).first()
        if public:
            self.fields["networks"].initial = [public]
        # The project's ``default`` group exists from the first time anyone looks (as in Neutron).
        default = network_services.default_security_group(project)
        self.fields["security_groups"].queryset = SecurityGroup.objects.for_project(project).order_by("name")
        self.fields["security_groups"].initial = [default.pk]

    def clean_boot_source(self):
        return self.cleaned_data["boot_source"] or "image"

    def clean(self):
        data = super().clean()
        source = data.get("boot_source")
        if source in ("image", "volume_from_image") and not data.get("image") and "image" not in self.errors:
            self.add_error("image", "Choose the image to boot from.")
        if source == "volume" and not data.get("boot_volume") and "boot_volume" not in self.errors:
            self.add_error("boot_volume", "Choose the volume to boot from.")
        return data

    def block_devices(self):
        """The root disk as compute.services.BlockDevice entries (Nova's
        block_device_mapping_v2 with destination ``volume``), or none when
        the instance boots from an image disk."""
        data = self.cleaned_data
        if data["boot_source"] == "volume_from_image":
            image = data["image"]
            return [services.BlockDevice(source="image", boot_index=0, image=image,
                                         size=data["volume_size"] or min_volume_size(image),
                                         delete_on_termination=data["delete_on_termination"])]
        if data["boot_source"] == "volume":
            return [services.BlockDevice(source="volume", boot_index=0, volume=data["boot_volume"])]
        return []

    def clean_user_data(self):
        text = self.cleaned_data["user_data"]
        if len(text.encode()) > MAX_USER_DATA_BYTES:
            raise forms.ValidationError(f"User data is limited to {MAX_USER_DATA_BYTES} bytes.")
        return text

    def launch_arguments(self):
        """The keyword arguments of compute.services.launch; user data goes
        base64-encoded, as the API receives it."""
        data = self.cleaned_data
        user_data = data["user_data"]
        block_devices = self.block_devices()
        return {
            "name": data["name"], "flavor": data["flavor"], "image": None if block_devices else data["image"],
            "block_devices": block_devices,
            "key_name": data["key_name"] or None,
            "user_data": base64.b64encode(user_data.encode()).decode() if user_data else None,
            "availability_zone": data["availability_zone"] or None,
            "min_count": 1, "max_count": data["count"],
            # Checked by the network service as the API's NIC requests are (a refusal is a form error).
            "networks": network_services.resolve_nic_requests(
                self.project, [{"uuid": network.pk} for network in data["networks"]]),
            "security_groups": [group.pk for group in data["security_groups"]],
        }

    def selected_flavor(self):
        """The flavor the form shows as chosen: the bound one, else the first."""
        field = self.fields["flavor"]
        value = self["flavor"].value()
        if value:
            flavor = field.queryset.filter(pk=value).first()
            if flavor is not None:
                return flavor
        return field.queryset.first()

    def selected_count(self):
        try:
            return max(1, min(MAX_LAUNCH_COUNT, int(self["count"].value() or 1)))
        except (TypeError, ValueError):
            return 1


class SnapshotForm(Form):
    name = forms.CharField(label="Snapshot name", max_length=255)


class ImageCreateForm(Form):
    name = forms.CharField(max_length=255)
    disk_format = forms.ChoiceField(label="Disk format", choices=DiskFormat.choices, initial=DiskFormat.QCOW2)
    container_format = forms.ChoiceField(label="Container format", choices=ContainerFormat.choices,
                                         initial=ContainerFormat.BARE)
    visibility = forms.ChoiceField(choices=[(Visibility.PRIVATE, "Private"), (Visibility.PUBLIC, "Public")],
                                   initial=Visibility.PRIVATE)
    min_disk = forms.IntegerField(label="Minimum disk (GB)", min_value=0, max_value=2**31 - 1, initial=0)
    min_ram = forms.IntegerField(label="Minimum RAM (MiB)", min_value=0, max_value=2**31 - 1, initial=0)
    file = forms.FileField(label="Image file", required=False,
                           help_text="Optional now: a queued image can be uploaded later.")

    def __init__(self, *args, staff=False, **kwargs):
        super().__init__(*args, **kwargs)
        if not staff:
            # Only operators publish to everyone (Glance's publicize_image).
            self.fields["visibility"].choices = [(Visibility.PRIVATE, "Private")]
            self.fields["visibility"].help_text = "Only operators can make an image public."
        self.fields["file"].widget.attrs["data-upload-file"] = ""


class ImageUploadForm(Form):
    file = forms.FileField(label="Image file")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["file"].widget.attrs["data-upload-file"] = ""


class HostDisableForm(Form):
    reason = forms.CharField(max_length=255, required=False)
