from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "set-password/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(post_reset_login=True, success_url="/"),
        name="password_reset_confirm",
    ),
    path("admin/", admin.site.urls),
    path("api/", include("labeling.api.urls")),
    path("api/", include("curation.api.urls")),
    path("api/", include("exports.api.urls")),
    path("api/", include("finetune.api.urls")),
    path("", include("curation.urls")),
    path("", include("exports.urls")),
    path("", include("finetune.urls")),
    path("", include("labeling.urls")),
]
