-- MLflow's own database beside the study storage (runs once, on an empty volume).
CREATE DATABASE mlflow OWNER tuner;
