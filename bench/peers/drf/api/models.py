"""The two resources, with the fields of src/overplane/declarations/crm.py and accounts.py:
strings of the declared lengths, the required ones required, the others null when absent."""

from django.db import models


class Appointment(models.Model):
    customer_name = models.CharField(max_length=1000)
    customer_phone_number = models.CharField(max_length=1000, null=True, blank=True)
    customer_skype = models.CharField(max_length=1000, null=True, blank=True)
    customer_details = models.CharField(max_length=65535, null=True, blank=True)
    scheduled_time = models.CharField(max_length=1000)
    status = models.CharField(max_length=1000)
    calendar_event = models.CharField(max_length=1000, null=True, blank=True)
    customer_email = models.CharField(max_length=1000)
    appointment_with = models.CharField(max_length=1000, null=True, blank=True)
    party = models.CharField(max_length=1000, null=True, blank=True)


class PartyLink(models.Model):
    primary_role = models.CharField(max_length=1000)
    secondary_role = models.CharField(max_length=1000, null=True, blank=True)
    primary_party = models.CharField(max_length=1000, null=True, blank=True)
    secondary_party = models.CharField(max_length=1000, null=True, blank=True)
