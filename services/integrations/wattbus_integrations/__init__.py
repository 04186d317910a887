"""integrations: Home Assistant MQTT discovery and user templates that republish readings anywhere."""
