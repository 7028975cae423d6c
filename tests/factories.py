"""factory_boy factories for the core models."""

import hashlib

import factory
from django.contrib.auth import get_user_model

from labeling.models import GuidelineVersion, Item, Membership, Project, Response, Role


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    password = factory.django.Password("correct horse battery staple")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"Project {n}")
    slug = factory.Sequence(lambda n: f"project-{n}")
    kind = Project.Kind.SFT
    overlap = 1
    flags = factory.LazyFunction(lambda: ["unsafe", "factual_error", "pii"])
    criteria = factory.LazyFunction(list)


class PairwiseProjectFactory(ProjectFactory):
    kind = Project.Kind.PAIRWISE
    overlap = 2
    criteria = factory.LazyFunction(lambda: ["helpfulness", "harmlessness", "honesty"])


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    project = factory.SubFactory(ProjectFactory)
    role = Role.ANNOTATOR


class ItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Item

    project = factory.SubFactory(ProjectFactory)
    prompt = factory.Sequence(lambda n: f"Prompt number {n}?")
    messages = factory.LazyAttribute(lambda i: [{"role": "user", "content": i.prompt}])
    content_hash = factory.LazyAttribute(lambda i: hashlib.sha256(i.prompt.encode()).hexdigest())
    open_slots = factory.LazyAttribute(lambda i: i.project.overlap)


class ResponseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Response

    item = factory.SubFactory(ItemFactory)
    position = 0
    model = "model-x"
    text = factory.Sequence(lambda n: f"Response text {n}.")


def pairwise_item(project: Project, **fields) -> Item:
    """An item with two responses, A (position 0) and B (position 1)."""
    item = ItemFactory(project=project, **fields)
    ResponseFactory(item=item, position=0, model="model-a", text=f"A answer to {item.prompt}")
    ResponseFactory(item=item, position=1, model="model-b", text=f"B answer to {item.prompt}")
    return item


class GuidelineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GuidelineVersion

    project = factory.SubFactory(ProjectFactory)
    number = factory.Sequence(lambda n: n + 1)
    body = "# Guidelines\n\nBe accurate."
    changelog = "First version"
