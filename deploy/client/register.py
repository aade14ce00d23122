"""Keystone registration of the plane's services, as kolla-ansible's service-ks-register role does it:
the service project, the service role, each service's account (admin and service roles in the service
project) and its catalog entry with public, internal and admin endpoints. Idempotent.

    python3 register.py < spec.json     # in the config-tools image, OS_CLOUD=controlplane

spec.json: {"region": ..., "services": [{"account", "password", "name", "type", "url"}, ...]}
"""

import json
import sys

import openstack


def find_or_create(find, create, name, **attrs):
    return find(name, ignore_missing=True) or create(name=name, **attrs)


def register(conn, spec):
    identity = conn.identity
    project = identity.find_project("service", domain_id="default", ignore_missing=True) or identity.create_project(
        name="service", domain_id="default", description="Service accounts")
    roles = [find_or_create(identity.find_role, identity.create_role, name) for name in ("admin", "service")]
    for entry in spec["services"]:
        user = identity.find_user(entry["account"], domain_id="default", ignore_missing=True)
        if user:
            identity.update_user(user, password=entry["password"])
        else:
            user = identity.create_user(name=entry["account"], password=entry["password"], domain_id="default",
                                        default_project_id=project.id)
        for role in roles:
            identity.assign_project_role_to_user(project, user, role)
        service = find_or_create(identity.find_service, identity.create_service, entry["name"],
                                 type=entry["type"], enabled=True)
        have = {e.interface for e in identity.endpoints(service_id=service.id, region_id=spec["region"])}
        for interface in ("public", "internal", "admin"):
            if interface not in have:
                identity.create_endpoint(service_id=service.id, interface=interface, url=entry["url"],
                                         region_id=spec["region"])
        print(f"registered {entry['name']} ({entry['type']}) at {entry['url']}, account {entry['account']}")


if __name__ == "__main__":
    register(openstack.connect(api_timeout=60), json.load(sys.stdin))
