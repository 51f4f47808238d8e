// Network isolation: a VNet whose app subnet the Flex Consumption app integrates with, and private endpoints for the
// storage account (blob, queue, table) and the Key Vault in the other subnet, each resolved through its private DNS
// zone linked to the VNet. With public network access off on both, these endpoints are the only way in.
// Deployed only when main.bicep's networkIsolation is on.

@description('Virtual network name.')
param name string

@description('Azure region of the VNet and the private endpoints (the DNS zones are global).')
param location string

@description('Address space of the VNet.')
param addressPrefix string = '10.60.0.0/16'

@description('Subnet the function app integrates with; one address per running instance.')
param appSubnetPrefix string = '10.60.0.0/24'

@description('Subnet of the private endpoints; one address per endpoint.')
param privateEndpointSubnetPrefix string = '10.60.1.0/24'

@description('Resource id of the storage account the app uses.')
param storageAccountId string

@description('Resource id of the Key Vault that holds the endpoint keys.')
param keyVaultId string

param tags object = {}

var appSubnetName = 'snet-app'
var privateEndpointSubnetName = 'snet-private-endpoints'

// One private endpoint per sub-resource the broker reaches, each with the zone Azure resolves that service's name in
// (the public-cloud zone names).
var privateLinks = [
  {
    service: 'blob'
    resourceId: storageAccountId
    zone: 'privatelink.blob.core.windows.net'
  }
  {
    service: 'queue'
    resourceId: storageAccountId
    zone: 'privatelink.queue.core.windows.net'
  }
  {
    service: 'table'
    resourceId: storageAccountId
    zone: 'privatelink.table.core.windows.net'
  }
  {
    service: 'vault'
    resourceId: keyVaultId
    zone: 'privatelink.vaultcore.azure.net'
  }
]

// Subnets inline rather than as child resources: a redeployment then leaves them, and what is attached to them, as
// they are.
resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: appSubnetName
        properties: {
          addressPrefix: appSubnetPrefix
          // Flex Consumption integrates only with a subnet delegated to Microsoft.App/environments.
          delegations: [
            {
              name: 'flex-consumption'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
        }
      }
      {
        name: privateEndpointSubnetName
        properties: {
          addressPrefix: privateEndpointSubnetPrefix
          privateEndpointNetworkPolicies: 'Disabled'
        }
      }
    ]
  }
}

resource zones 'Microsoft.Network/privateDnsZones@2024-06-01' = [
  for link in privateLinks: {
    name: link.zone
    location: 'global'
    tags: tags
  }
]

resource zoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2024-06-01' = [
  for (link, index) in privateLinks: {
    parent: zones[index]
    name: '${name}-link'
    location: 'global'
    tags: tags
    properties: {
      registrationEnabled: false
      virtualNetwork: {
        id: vnet.id
      }
    }
  }
]

resource endpoints 'Microsoft.Network/privateEndpoints@2024-05-01' = [
  for link in privateLinks: {
    name: 'pe-${last(split(link.resourceId, '/'))}-${link.service}'
    location: location
    tags: tags
    properties: {
      subnet: {
        id: '${vnet.id}/subnets/${privateEndpointSubnetName}'
      }
      privateLinkServiceConnections: [
        {
          name: link.service
          properties: {
            privateLinkServiceId: link.resourceId
            groupIds: [
              link.service
            ]
          }
        }
      ]
    }
  }
]

// The zone group writes and keeps the endpoint's A record in its zone.
resource zoneGroups 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = [
  for (link, index) in privateLinks: {
    parent: endpoints[index]
    name: 'default'
    properties: {
      privateDnsZoneConfigs: [
        {
          name: link.service
          properties: {
            privateDnsZoneId: zones[index].id
          }
        }
      ]
    }
  }
]

output appSubnetId string = '${vnet.id}/subnets/${appSubnetName}'
output id string = vnet.id
