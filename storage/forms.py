"""The Volumes panels' forms. They check shapes (required fields, which
source goes with which choice); every rule that matters (sizes against the
source, statuses, quotas, dependencies) lives in storage/services.py, whose
refusals the views attach to the form, on the field they name when they
name one (``FIELD_HINTS``)."""

from django import forms

from compute.models import Image, Instance
from compute.models.images import ImageStatus
from compute.states import TaskState
from dashboard.forms import Form

from . import services
from .models import Volume, VolumeSnapshot, VolumeType
from .states import CLONE_SOURCE, SnapshotStatus

SOURCE_CHOICES = [("empty", "No source, empty volume"), ("image", "Image"), ("snapshot", "Volume snapshot"),
                  ("volume", "Another volume")]

# A service message that names one of these inputs is shown beside the field
# (first match wins, so the more specific words come first).
FIELD_HINTS = (
    ("new size", "new_size"), ("new_size", "new_size"), ("device", "device"), ("image_name", "image_name"),
    ("disk_format", "disk_format"), ("size", "size"), ("imageref", "image"), ("image", "image"),
    ("snapshot", "snapshot"), ("source volume", "source_volume"), ("volume_type", "volume_type"),
    ("volume type", "volume_type"), ("description", "description"), ("name", "name"),
)


def gib(value):
    return f"{value} GiB"


class SizedSelect(forms.Select):
    """Each option carries the size (GiB) a volume made from it needs at
    least, so volumes.js can draw the quota bars' "after" without asking."""

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        row = getattr(value, "instance", None)
        if row is not None:
            option["attrs"]["data-size"] = min_size(row)
        return option


def min_size(source):
    """The size a volume made from ``source`` gets when none is asked for."""
    if isinstance(source, Image):
        return services._image_size_gb(source)  # the service's own rule, not a copy of it
    return source.size


class ImageChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, image):
        return f"{image.name or image.pk} ({gib(min_size(image))})"


class SnapshotChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, snapshot):
        return f"{snapshot.name or snapshot.pk} ({gib(snapshot.size)})"


class VolumeChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, volume):
        return f"{volume.name or volume.pk} ({gib(volume.size)})"


class InstanceChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, instance):
        return f"{instance.name} ({instance.status})"


class VolumeCreateForm(Form):
    name = forms.CharField(max_length=255, required=False)
    description = forms.CharField(max_length=255, required=False)
    source_type = forms.ChoiceField(label="Volume source", choices=SOURCE_CHOICES, initial="empty")
    image = ImageChoiceField(queryset=Image.objects.none(), required=False, widget=SizedSelect,
                             help_text="The volume is bootable and holds the image's content.")
    snapshot = SnapshotChoiceField(label="Snapshot", queryset=VolumeSnapshot.objects.none(), required=False,
                                   widget=SizedSelect)
    source_volume = VolumeChoiceField(label="Source volume", queryset=Volume.objects.none(), required=False,
                                      widget=SizedSelect)
    volume_type = forms.ModelChoiceField(label="Type", queryset=VolumeType.objects.none(), required=False,
                                         empty_label="Default (the source's type, or the cloud's default)")
    size = forms.IntegerField(label="Size (GiB)", min_value=1, max_value=services.MAX_SIZE, required=False,
                              help_text="Empty with a source: the source's size.")

    def __init__(self, *args, project, staff=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["image"].queryset = (Image.objects.visible_to(project).filter(status=ImageStatus.ACTIVE)
                                         .order_by("name", "id"))
        self.fields["snapshot"].queryset = (VolumeSnapshot.objects.for_project(project)
                                            .filter(status=SnapshotStatus.AVAILABLE).order_by("name", "id"))
        self.fields["source_volume"].queryset = (Volume.objects.for_project(project)
                                                 .filter(status__in=CLONE_SOURCE).order_by("name", "id"))
        self.fields["volume_type"].queryset = VolumeType.objects.visible_to(project, staff=staff)
        self.fields["size"].widget.attrs["data-volume-size"] = ""
        self.fields["source_type"].widget.attrs["data-volume-source"] = ""
        for name in ("image", "snapshot", "source_volume"):
            self.fields[name].widget.attrs["data-volume-source-field"] = name

    def clean(self):
        data = super().clean()
        source = data.get("source_type")
        field = {"image": "image", "snapshot": "snapshot", "volume": "source_volume"}.get(source)
        if field and not data.get(field) and field not in self.errors:
            self.add_error(field, "Choose the volume's source.")
        if source == "empty" and data.get("size") is None and "size" not in self.errors:
            self.add_error("size", "An empty volume needs a size.")
        return data

    def source(self):
        """The chosen source row (image, snapshot or volume), or None."""
        field = {"image": "image", "snapshot": "snapshot", "volume": "source_volume"}.get(
            self.cleaned_data.get("source_type"))
        return self.cleaned_data.get(field) if field else None

    def create_arguments(self):
        """The keyword arguments of storage.services.create_volume (but the project and user)."""
        data = self.cleaned_data
        source = data["source_type"]
        return {
            "name": data["name"], "description": data["description"], "size": data["size"],
            "volume_type": data["volume_type"],
            "image": data["image"] if source == "image" else None,
            "snapshot": data["snapshot"] if source == "snapshot" else None,
            "source_volume": data["source_volume"] if source == "volume" else None,
        }

    def selected_size(self):
        """The size the bars show as "after": the one typed, else the chosen source's."""
        value = self["size"].value()
        try:
            if value not in (None, ""):
                return max(0, int(value))
        except (TypeError, ValueError):
            return 0
        field = {"image": "image", "snapshot": "snapshot", "volume": "source_volume"}.get(
            self["source_type"].value())
        chosen = self[field].value() if field else None
        if chosen:
            row = self.fields[field].queryset.filter(pk=chosen).first()
            if row is not None:
                return min_size(row)
        return 0


class VolumeExtendForm(Form):
    new_size = forms.IntegerField(label="New size (GiB)", min_value=1, max_value=services.MAX_SIZE,
                                  help_text="Larger than the current size; the volume must be available.")


class VolumeAttachForm(Form):
    instance = InstanceChoiceField(queryset=Instance.objects.none(), empty_label=None)
    device = forms.CharField(label="Device name", max_length=32, required=False,
                             widget=forms.TextInput(attrs={"placeholder": "/dev/vdb"}),
                             help_text="Empty: the next free one (/dev/vdb onward).")

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["instance"].queryset = (Instance.objects.for_project(project).live()
                                            .exclude(task_state=TaskState.DELETING).order_by("name", "id"))


class VolumeSnapshotForm(Form):
    name = forms.CharField(label="Snapshot name", max_length=255)
    description = forms.CharField(max_length=255, required=False)


class VolumeUploadForm(Form):
    image_name = forms.CharField(label="Image name", max_length=255)
    disk_format = forms.ChoiceField(label="Disk format", choices=[(f, f) for f in services.IMAGE_DISK_FORMATS],
                                    initial="raw")
