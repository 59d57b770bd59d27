"""Nova 2.1 ``os-volume_attachments``: a server's volumes, attach and
detach (nova/api/openstack/compute/volume_attachments.py; Tempest's
api_schema/response/compute/v2_1/volumes.py). At 2.1 an attachment's ``id``
is the volume's id. The work is storage.services.attach_volume /
detach_volume, which the dashboard calls too."""

from rest_framework.response import Response

from core.openstack.errors import BadRequest, NotFound
from core.openstack.views import parse_int
from storage import services as volume_services
from storage.models import Volume, VolumeAttachment

from .servers import ServerViewMixin
from .views import only_keys


def attachment_body(attachment):
    return {"id": attachment.volume_id, "serverId": attachment.instance_id, "volumeId": attachment.volume_id,
            "device": attachment.device}


class VolumeAttachmentsView(ServerViewMixin):
    def attachments(self, instance):
        return VolumeAttachment.objects.filter(instance=instance).order_by("device")

    def volume(self, volume_id):
        """The project's volume, or 404 as Nova's VolumeNotFound."""
        if not isinstance(volume_id, str) or not volume_id:
            raise BadRequest("volumeId must be a volume's id.")
        return self.get_or_404(Volume.objects.for_project(self.request.project),
                               f"Volume {volume_id} could not be found.", pk=volume_id)

    def get(self, request, server_id, volume_id=None):
        instance = self.server(server_id)
        rows = self.attachments(instance)
        if volume_id is not None:
            attachment = rows.filter(volume_id=volume_id).first()
            if attachment is None:
                raise NotFound(f"Volume {volume_id} is not attached to instance {instance.pk}.")
            return Response({"volumeAttachment": attachment_body(attachment)})
        params = request.query_params
        offset = parse_int(params.get("offset", 0), "offset", minimum=0)
        rows = rows[offset:]
        if "limit" in params:
            rows = rows[:parse_int(params["limit"], "limit", minimum=0)]
        return Response({"volumeAttachments": [attachment_body(a) for a in rows]})

    def post(self, request, server_id):
        instance = self.server(server_id)
        data = self.body("volumeAttachment")
        only_keys(data, ("volumeId", "device"), "volumeAttachment")
        if "volumeId" not in data:
            raise BadRequest("'volumeId' is a required property.")
        device = data.get("device")
        if device is not None and not isinstance(device, str):
            raise BadRequest("device must be a string or null.")
        attachment = volume_services.attach_volume(
            project=request.project, volume=self.volume(data["volumeId"]), instance=instance, device=device or None,
            user=request.user, request_id=request.request_id)
        return Response({"volumeAttachment": attachment_body(attachment)})

    def put(self, request, server_id, volume_id):
        # Swapping a volume (Nova's swap_volume) is an operator's migration tool.
        raise BadRequest("Swapping the volume of an attachment is not supported.")

    def delete(self, request, server_id, volume_id):
        instance = self.server(server_id)
        volume_services.detach_volume(project=request.project, volume=self.volume(volume_id), instance=instance,
                                      user=request.user, request_id=request.request_id)
        return Response(status=202)
