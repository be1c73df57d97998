from django.contrib import admin
from django.urls import include, path

from engage.api import api
from engage.views import login

# Both login forms count failed attempts and refuse past the limit (engage/views/login.py).
admin.site.login_form = login.LimitedAdminAuthenticationForm

urlpatterns = [
    path("admin/", admin.site.urls),
    # Before Django's auth URLs, so that this login page is the one served as "login".
    path("accounts/login/", login.LimitedLoginView.as_view(), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/", api.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("engage.urls")),
]
