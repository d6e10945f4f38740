"""HTTP server for the registered model's Production version.

``python -m dp_serving`` runs in the TensorFlow environment (.venv-lifecycle or the serving
image). ``python -m dp_serving.embedded`` runs in Airflow's environment: it starts the
embedded stack's S3 and MLflow servers, then the model server as a child process. Importing
this package loads nothing heavy, so the launcher can use it without TensorFlow.
"""
