mod crd_validation;
