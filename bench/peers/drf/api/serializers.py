from rest_framework import serializers

from api.models import Appointment, PartyLink


class AppointmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Appointment
        fields = "__all__"


class PartyLinkSerializer(serializers.ModelSerializer):
    class Meta:
        model = PartyLink
        fields = "__all__"
