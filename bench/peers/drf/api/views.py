from rest_framework import viewsets

from api.models import Appointment, PartyLink
from api.serializers import AppointmentSerializer, PartyLinkSerializer


class AppointmentViewSet(viewsets.ModelViewSet):
    queryset = Appointment.objects.all().order_by("id")
    serializer_class = AppointmentSerializer


class PartyLinkViewSet(viewsets.ModelViewSet):
    queryset = PartyLink.objects.all().order_by("id")
    serializer_class = PartyLinkSerializer
