"""Applying a blueprint: validate the document, check its Feast references against the
registry, create the view Looper maintains for personalization, then store the version.
Every check runs before anything is written, so a rejected blueprint changes nothing."""

from __future__ import annotations

from services.blueprints.spec import Blueprint, load_blueprint_yaml
from services.blueprints.store import BlueprintStore, StoredBlueprint
from services.features import personalization
from services.features.store import LooperFeatureStore
from services.platform.errors import FieldViolation, InvalidArgument


class BlueprintApplier:
    def __init__(self, blueprints: BlueprintStore, features: LooperFeatureStore | None):
        self.blueprints = blueprints
        self.features = features

    def apply(self, spec_yaml: str) -> tuple[StoredBlueprint, bool]:
        blueprint = load_blueprint_yaml(spec_yaml)
        if self.features is not None:
            self._check_feast_references(blueprint)
            if blueprint.personalization:
                self._check_view_is_ours(blueprint)
                self.features.apply(personalization.view_definitions(blueprint, self.features))
        return self.blueprints.apply(spec_yaml)

    def _check_view_is_ours(self, blueprint: Blueprint) -> None:
        owner = self.features.view_tags(blueprint.personalization.view)
        if owner is not None and (owner.get("owner") != "looper" or owner.get("use_case") != blueprint.name):
            raise InvalidArgument.single("personalization.view", f"{blueprint.personalization.view!r} is a Feast view "
                                         "that Looper does not keep for this use case; name another")

    def _check_feast_references(self, blueprint: Blueprint) -> None:
        own = personalization.own_references(blueprint)  # created by this apply, not in the registry yet
        refs = tuple(r for r in blueprint.feast_features if r not in own)
        problems = self.features.missing_references(refs)
        if problems:
            index = {ref: i for i, ref in enumerate(blueprint.feast_features)}
            raise InvalidArgument([FieldViolation(f"features.feast[{index[refs[i]]}]", reason)
                                   for i, reason in sorted(problems.items())])
