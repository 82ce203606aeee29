"""The DRF peer's URLs: both resources under /api/, as Overplane serves them (no trailing
slash, so that ``/api/crm/appointment/{id}`` is the object and not a redirect)."""

from api import views
from django.urls import include, path
from rest_framework import routers

router = routers.DefaultRouter(trailing_slash=False)
router.register(r"crm/appointment", views.AppointmentViewSet)
router.register(r"accounts/party-link", views.PartyLinkViewSet)

urlpatterns = [
    path("api/", include(router.urls)),
]
