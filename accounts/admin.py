"""The Django admin for accounts."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.admin.forms import AdminPasswordChangeForm as AdminSiteOwnPasswordChangeForm
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm, AdminUserCreationForm, UserChangeForm
from django.contrib.auth.views import PasswordChangeView
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.http import Http404
from django.urls import reverse
from django.utils import timezone

from accounts.backends import RATE_LIMITED
from accounts.exceptions import RateLimited, TokenRevoked
from accounts.models import AccountToken, AuthEvent, RefreshToken, Session, SessionEndReason, User
from accounts.selectors import sessions_live
from accounts.services import (
    account_tokens_revoke,
    admin_sign_in_record,
    django_session_password_check_count,
    password_set,
    session_revoke_all,
    sessions_revoke,
    user_deactivate,
    users_delete,
)
from accounts.services.locking import users_locked


class AuditedAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin's login form; every attempt goes to the audit trail, as a GraphQL sign-in does."""

    def clean(self):
        try:
            cleaned = super().clean()
        except ValidationError:
            admin_sign_in_record(
                request=self.request,
                email=self.cleaned_data.get("username"),
                user=None,
                refusal=getattr(self.request, RATE_LIMITED, None),
            )
            raise
        admin_sign_in_record(request=self.request, email=self.cleaned_data.get("username"), user=self.user_cache)
        return cleaned


admin.site.login_form = AuditedAdminAuthenticationForm


class UserCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("username", "email")


class PasswordSetForm(AdminPasswordChangeForm):
    """The admin's "change password" form, through the service that ends every session."""

    def save(self, commit=True):
        if not commit:
            return super().save(commit=False)
        # AdminPasswordChangeForm's clean() turns the "usable password" choice into this key.
        usable = self.cleaned_data.get("set_usable_password", True)
        try:
            password_set(user=self.user, password=self.cleaned_data["password1"] if usable else None)
        except TokenRevoked:
            raise Http404("The account no longer exists.") from None
        return self.user


class OwnPasswordChangeForm(AdminSiteOwnPasswordChangeForm):
    """The admin's "change my password" page, through the service that ends every session.

    Its check of the old password counts against the admin session's budget, as a
    signed-in GraphQL password check counts against its session's.
    """

    def __init__(self, *args, request, **kwargs):
        super().__init__(*args, **kwargs)
        self.request = request

    def clean_old_password(self):
        try:
            django_session_password_check_count(session_key=self.request.session.session_key or "")
        except RateLimited as refused:
            raise ValidationError(
                f"Too many attempts. Try again in {refused.retry_after} seconds.", code="rate_limited"
            ) from None
        return super().clean_old_password()

    def save(self, commit=True):
        if not commit:
            return super().save(commit=False)
        try:
            password_set(user=self.user, password=self.cleaned_data["new_password1"])
        except TokenRevoked:
            raise Http404("The account no longer exists.") from None
        return self.user


def own_password_change(request):
    """The admin's "change my password" page (admin.site.password_change) with OwnPasswordChangeForm.

    Django's AdminSite hard-codes its form; config/urls.py routes the page here instead,
    so that every way the admin sets a password goes through the account rules.
    """
    request.current_app = admin.site.name
    return OwnPasswordChangeView.as_view(
        success_url=reverse("admin:password_change_done", current_app=admin.site.name),
        extra_context=admin.site.each_context(request),
    )(request)


class OwnPasswordChangeView(PasswordChangeView):
    form_class = OwnPasswordChangeForm

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "request": self.request}


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"
        field_classes = {"email": forms.EmailField}


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserEditForm
    add_form = UserCreationForm
    list_display = ("username", "email", "is_active", "is_staff", "is_email_verified", "date_joined", "last_login")
    list_filter = ("is_active", "is_staff", "is_superuser", "is_email_verified")
    search_fields = ("username", "email")
    ordering = ("-date_joined",)
    readonly_fields = ("date_joined", "last_login")
    fieldsets = (
        (None, {"fields": ("username", "email", "password")}),
        ("Status", {"fields": ("is_active", "is_email_verified")}),
        ("Permissions", {"fields": ("is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("date_joined", "last_login")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "email", "usable_password", "password1", "password2")}),
    )
    actions = ["end_all_sessions"]

    change_password_form = PasswordSetForm

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None and request.method == "POST" and transaction.get_connection().in_atomic_block:
            # An edit or a deletion works on the account's row, locked and current (the one
            # lock order: the accounts first, by id): a password change committed while the
            # form was on its way is never written back over with the hash read before it.
            # The administrator's own row too: the admin's log entry refers to it, and two
            # administrators editing each other must not deadlock.
            users_locked(sorted({obj.pk, request.user.pk}))
            obj = User.objects.filter(pk=obj.pk).first()
        return obj

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # An account's sessions, refresh tokens and emailed links go with it by rule (nobody
        # deletes them one by one in the admin), so deleting it needs no permission on them.
        perms_needed -= {model._meta.verbose_name for model in (Session, RefreshToken, AccountToken)}
        return deleted, counts, perms_needed, protected

    def delete_model(self, request, obj):
        users_delete(user_ids=[obj.pk], request=request, actor=request.user)

    def delete_queryset(self, request, queryset):
        users_delete(user_ids=list(queryset.values_list("pk", flat=True)), request=request, actor=request.user)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and "is_active" in form.changed_data and not obj.is_active:
            # A deactivated account's sessions end too, so reactivating it revives none.
            user_deactivate(user=obj, request=request)
        if change and "email" in form.changed_data:
            # Links mailed to the old address (a reset, a pending change) must not outlive it.
            account_tokens_revoke(user=obj)

    def has_end_permission(self, request):
        return request.user.has_perm("accounts.change_session")

    @admin.action(description="End all sessions of the selected users", permissions=["end"])
    def end_all_sessions(self, request, queryset):
        count = 0
        for user in queryset:
            try:
                count += session_revoke_all(
                    user=user, reason=SessionEndReason.ADMIN, request=request, actor=request.user
                )
            except TokenRevoked:
                continue  # deleted since the list was shown: its sessions went with it
        self.message_user(request, f"Ended {count} session(s).", messages.SUCCESS)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the admin shows but never adds, edits or deletes (the services and housekeeping do)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class SessionStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return (("live", "Live"), ("revoked", "Revoked"), ("expired", "Expired"))

    def queryset(self, request, queryset):
        if self.value() == "live":
            return queryset.filter(pk__in=sessions_live().values("pk"))
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == "expired":
            live_or_revoked = Q(pk__in=sessions_live().values("pk")) | Q(revoked_at__isnull=False)
            return queryset.exclude(live_or_revoked)
        return queryset


@admin.register(Session)
class SessionAdmin(ReadOnlyAdmin):
    """Sign-in sessions: read-only, except that an administrator can end them."""

    list_display = ("user", "created_at", "last_used_at", "expires_at", "ip_address", "short_user_agent", "state")
    list_filter = (SessionStateFilter, "revoked_reason", ("user", admin.RelatedOnlyFieldListFilter))
    search_fields = ("user__email", "user__username", "ip_address")
    ordering = ("-last_used_at",)
    list_select_related = ("user",)
    actions = ["end_sessions"]
    fields = (
        "id",
        "user",
        "created_at",
        "last_used_at",
        "expires_at",
        "user_agent",
        "ip_address",
        "revoked_at",
        "revoked_reason",
    )
    readonly_fields = fields

    # Ending a session is the action below; deleting one is housekeeping's.
    def has_end_permission(self, request):
        return request.user.has_perm("accounts.change_session")

    @admin.display(description="user agent")
    def short_user_agent(self, session):
        return session.user_agent[:60]

    @admin.display(description="state")
    def state(self, session):
        if session.revoked_at is not None:
            return f"revoked ({session.get_revoked_reason_display()})"
        return "expired" if session.is_expired(timezone.now()) else "live"

    @admin.action(description="End the selected sessions", permissions=["end"])
    def end_sessions(self, request, queryset):
        count = sessions_revoke(queryset, reason=SessionEndReason.ADMIN, request=request, actor=request.user)
        self.message_user(request, f"Ended {count} session(s).", messages.SUCCESS)


@admin.register(AuthEvent)
class AuthEventAdmin(ReadOnlyAdmin):
    """The audit trail: read-only, searchable, pruned by `manage.py housekeeping`."""

    list_display = ("created_at", "kind", "user", "user_ref", "identifier", "ip_address", "detail")
    list_filter = ("kind", ("created_at", admin.DateFieldListFilter))
    search_fields = ("identifier", "user__email", "user__username", "ip_address", "=user_ref")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-pk")
    list_select_related = ("user",)
    fields = (
        "created_at",
        "kind",
        "user",
        "user_ref",
        "identifier",
        "ip_address",
        "user_agent",
        "session_id",
        "detail",
    )
    readonly_fields = fields
