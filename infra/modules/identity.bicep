// The broker's user-assigned managed identity: one principal for storage, Key Vault, telemetry and ARM, created
// before the app so its role assignments can exist before the first start.

@description('Name of the user-assigned managed identity.')
param name string

@description('Azure region of the identity.')
param location string

param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
